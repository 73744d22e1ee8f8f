"""auth-service: JWT login and verification."""
