"""Hosts: how commands reach a machine (transports) and what the machine is (OS facts)."""
