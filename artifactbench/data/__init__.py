"""Package data: detector cards, run recipes and published figures (mapped from the checkout)."""
