"""Purchase orders in the application layer: wire translation and the command handler."""
