package dev.offmm.core.model;

/** offmm disagreed with the reference model (or broke an invariant the model checks). */
final class ModelMismatch extends AssertionError {
    private static final long serialVersionUID = 1L;

    ModelMismatch(String message) {
        super(message);
    }
}
