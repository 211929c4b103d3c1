"""The cross-border policy as a feature: what received messages do to the
receiver's case threads and registers, under the rules of who may change what."""
