"""The controller side of the southbound channel: change follower, agent hub, agent status and
the WebSocket endpoint."""
