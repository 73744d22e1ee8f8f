"""user-service: users with a database, and their reads kept in the process while no user changes."""
