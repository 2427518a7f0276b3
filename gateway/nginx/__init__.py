"""The nginx edge configuration (a template) and its renderer."""
