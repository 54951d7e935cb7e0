"""Monitoring: collectors (command + pure parser), rules, journal follower."""
