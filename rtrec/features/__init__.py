"""Feature definitions shared by the streaming jobs and their batch twins."""
