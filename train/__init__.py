"""train: see PRODUCT.md."""
