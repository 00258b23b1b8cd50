"""The reference host agent: the southbound session client, the simulator and, next, the
Linux dataplane."""
