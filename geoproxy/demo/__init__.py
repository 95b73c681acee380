"""Demo tools: a small application server and a launcher for a fleet of them."""
