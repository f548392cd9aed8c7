"""What the bot does with each message, whatever front end delivered it: the per-chat queue,
the actions a message asks for, the agent's stream, exports, files, error replies and the
session, each a small part that `Conversation` wires together."""

from bot.conversation.conversation import MAX_QUEUED, Conversation

__all__ = ["MAX_QUEUED", "Conversation"]
