"""What operators run the controller with: health probes, Prometheus metrics and the hosts
view, wired into the application by ``install``."""
