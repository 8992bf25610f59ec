"""Server-rendered HTML: the account pages (/users/...), the homepage and the preview mailbox."""
