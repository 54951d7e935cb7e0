"""Notifications: Gotify and Apprise channels, storm control, delivery from the outbox.

Nothing here imports httpx or Apprise until a channel is built or used.
"""

from .channels import Channel, DeliveryError, build_channels
from .message import PRIORITIES, Message
from .notifier import Notifier

__all__ = ["PRIORITIES", "Channel", "DeliveryError", "Message", "Notifier", "build_channels"]
