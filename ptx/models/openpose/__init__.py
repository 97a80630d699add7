"""The OpenPose body network and the references' pre/post-processing (maps -> people), no files or weights:
``ptx.convert.openpose`` reads weights into it, ``ptx.pose`` (the user-facing estimator) runs it."""
