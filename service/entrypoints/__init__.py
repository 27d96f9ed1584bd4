"""Ways in: the FastStream service and the command-line tool."""
