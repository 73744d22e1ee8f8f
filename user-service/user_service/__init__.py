"""user-service: users with a database and a Redis cache-aside."""
