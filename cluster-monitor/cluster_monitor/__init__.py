"""cluster-monitor: Kubernetes resources, time series, events and a live feed."""
