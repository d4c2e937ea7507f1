"""From raw video files to pointtal inputs: decoding, feature extraction and click annotation."""
