"""What devices send (requests) and read (responses)."""
