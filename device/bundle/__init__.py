"""Bundles on the board: the manifest schema and the loader that verifies every file."""
from device.bundle.loader import Bundle, BundleError, default_bundle_dir, find_model_dir, load_bundle, sha256_of
from device.bundle.manifest import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, ManifestError, validate_manifest

__all__ = ["Bundle", "BundleError", "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "ManifestError",
           "default_bundle_dir", "find_model_dir", "load_bundle", "sha256_of", "validate_manifest"]
