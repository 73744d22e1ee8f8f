"""dashboard-ui: the live dashboard's static files and the small server behind the load balancer's dashboard pool."""
