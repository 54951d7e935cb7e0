"""ai-sysadmin: an autonomous, careful system administrator for Linux hosts."""

__version__ = "0.1.0"
