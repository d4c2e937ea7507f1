"""From raw video to detections: feature extraction, the click-annotation page, detection on new videos."""
