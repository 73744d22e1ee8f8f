"""api-gateway: routes /api/* to the five services by path prefix."""
