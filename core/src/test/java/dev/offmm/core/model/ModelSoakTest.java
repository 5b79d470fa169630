package dev.offmm.core.model;

import dev.offmm.core.VmConfig;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

/**
 * The long soak of the model-based tester, skipped unless {@code -Doffmm.soak.ops=N} is given:
 * N operations per thread in every lock mode, seed {@code -Doffmm.soak.seed} (default: the
 * time), threads {@code -Doffmm.soak.threads} (default 3), fault injection probability
 * {@code -Doffmm.soak.failures} (default 0). Run with
 * {@code mvn -pl core verify -Dtest=ModelSoakTest -Doffmm.soak.ops=2000000}, or without Maven
 * through {@link #main}.
 */
@Tag("soak")
class ModelSoakTest {
    static Stream<VmConfig> modes() {
        return ModelBasedRandomTest.modes();
    }

    @ParameterizedTest
    @MethodSource("modes")
    @EnabledIfSystemProperty(named = "offmm.soak.ops", matches = "\\d+")
    void soak(VmConfig config) {
        long ops = Long.getLong("offmm.soak.ops");
        long seed = Long.getLong("offmm.soak.seed", System.nanoTime());
        int threads = Integer.getInteger("offmm.soak.threads", 3);
        double failures = Double.parseDouble(System.getProperty("offmm.soak.failures", "0"));
        System.out.printf("soak %s%s: seed=%d threads=%d ops/thread=%d failures=%s%n", config.lockMode(),
                config.debugLocks() ? "+debug" : "", seed, threads, ops, failures);
        ModelRun.Options o = ModelRun.Options.of(threads, ops).withFailures(failures);
        ModelRun.Result r = ModelRun.run(config, seed, o);
        System.out.printf("soak %s%s: %d ops in %d ms, %d failures injected%n", config.lockMode(),
                config.debugLocks() ? "+debug" : "", r.ops(), r.millis(), r.injected());
    }

    /**
     * Runs the soak outside Maven: {@code java -cp core/target/test-classes:core/target/classes:offheap/target/classes
     * dev.offmm.core.model.ModelSoakTest [ops per thread] [seed]}.
     *
     * @param args ops per thread and seed, both optional
     */
    public static void main(String[] args) {
        long ops = args.length > 0 ? Long.parseLong(args[0]) : 1_000_000;
        long seed = args.length > 1 ? Long.parseLong(args[1]) : System.nanoTime();
        System.setProperty("offmm.soak.ops", Long.toString(ops));
        System.setProperty("offmm.soak.seed", Long.toString(seed));
        ModelSoakTest t = new ModelSoakTest();
        modes().forEach(t::soak);
    }
}
