"""The built-in model's artifacts and the script that trains and exports it."""
