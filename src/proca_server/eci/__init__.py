"""The ECI build (docs/eci.md): the public schema of a signature page, the staff API on
/private/api, and `proca-server eci create`."""
