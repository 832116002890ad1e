"""A trip booking saga on dapr_saga: flight, hotel and car booked in parallel, held until the
traveller confirms (within a day), then paid; anything that fails unwinds the rest (README.md)."""
