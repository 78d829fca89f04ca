"""The HTTP edge: thin routes per noun, their schemas, and the one error renderer."""
