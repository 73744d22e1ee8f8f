"""load-balancer: the suite's front door and traffic meter."""
