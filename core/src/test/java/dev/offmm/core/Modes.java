package dev.offmm.core;

import java.util.stream.Stream;

/** Every lock mode, inline and with debug locks: the parameter source of the spec suites. */
final class Modes {
    private Modes() {
    }

    static Stream<VmConfig> all() {
        return Stream.of(LockMode.SINGLE, LockMode.SPLIT_PTE, LockMode.SPLIT_PTE_PMD)
                .flatMap(m -> Stream.of(false, true).map(d -> VmConfig.builder().lockMode(m).debugLocks(d).build()));
    }
}
