"""Protocol-faithful test servers for the remote services the studio talks to."""
