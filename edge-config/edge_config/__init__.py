"""edge-config: edge device configuration, health, reload and Kubernetes sync."""
