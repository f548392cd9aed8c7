"""What operators watch and tune: logs, metrics, health endpoints, event-loop lag and the
process's runtime set-up."""
