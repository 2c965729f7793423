"""app: see PRODUCT.md."""
