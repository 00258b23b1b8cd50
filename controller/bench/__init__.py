"""Load benchmarks of a running controller (``sdnc bench ...``).

Benchmarks are tools that print numbers; they talk to the controller over HTTP only and never
import the service or the store.
"""
