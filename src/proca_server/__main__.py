from proca_server.cli import main

main()
