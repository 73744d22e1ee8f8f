"""Development-only tools (the suite launcher): installed in the workspace, never in an image."""
