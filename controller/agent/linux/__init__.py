"""The reference Linux host agent: programs the kernel (namespaces, bridges, VXLAN, routes,
nftables, tc) from the southbound objects. See docs/agent.md."""
