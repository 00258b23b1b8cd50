"""SDN network controller with an MS-NCNBI compatible northbound API."""

__version__ = "0.1.0"
