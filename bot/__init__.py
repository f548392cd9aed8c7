"""The application: the conversation, its per-chat store, the Telegram and terminal front
ends, the command line, and what operators watch.

`app` is the one place that builds clients and wires the parts; `io` holds the plain
messages every front end speaks; `settings` is read once at start-up; `texts` is every
sentence the bot says."""
