"""Safe fetching of images, validation, video encoding, file storage and signed URLs."""
