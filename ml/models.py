"""Built in a later issue; see DESIGN.md."""
