"""The suite's services: auth, orders and notifications, one Flask app each."""
