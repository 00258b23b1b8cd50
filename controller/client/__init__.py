"""The ``sdnc`` client commands (``get``, ``apply``, ``delete``, ``hosts``, ``describe``): they
talk HTTP to a running controller -- never to its database -- so they work from any machine
that reaches the API, against any replica."""
