package dev.offmm.offheap.inject;

import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Fail points for every allocation site of one physical memory. Disarmed, a check is one
 * volatile load of {@code armed}. Armed, a site fails either on its n-th call from now (once),
 * or at random with a given probability from a seeded generator.
 *
 * <p>Thread safety: arming and disarming may race with checks; a check sees either the old or
 * the new plan. The random plan is shared by threads under a lock, so a seed reproduces the
 * same failures only for a single-threaded workload.
 */
public final class FailPoints {
    private static final FailSite[] SITES = FailSite.values();

    private volatile boolean armed;
    private final Plan[] plans = new Plan[SITES.length];
    private final AtomicLong[] injected = new AtomicLong[SITES.length];

    /** Creates a disarmed set of fail points. */
    public FailPoints() {
        for (int i = 0; i < SITES.length; i++) {
            injected[i] = new AtomicLong();
        }
    }

    private record Plan(AtomicLong countdown, SplittableRandom random, double probability) {
    }

    /** Makes the {@code n}-th call of {@code site} from now (1 = the next one) fail, once. */
    public synchronized void failNth(FailSite site, long n) {
        if (n < 1) {
            throw new IllegalArgumentException("n=" + n + " (expected >= 1)");
        }
        plans[site.ordinal()] = new Plan(new AtomicLong(n), null, 0);
        armed = true;
    }

    /** Makes each call of {@code site} fail with {@code probability}, drawn from {@code seed}. */
    public synchronized void failRandomly(FailSite site, long seed, double probability) {
        if (!(probability >= 0 && probability <= 1)) {
            throw new IllegalArgumentException("probability=" + probability + " (expected 0 <= probability <= 1)");
        }
        plans[site.ordinal()] = new Plan(null, new SplittableRandom(seed), probability);
        armed = true;
    }

    /** Makes every call of {@code site} fail until disarmed. */
    public void failAlways(FailSite site) {
        failRandomly(site, 0, 1.0);
    }

    /** Disarms one site. */
    public synchronized void disarm(FailSite site) {
        plans[site.ordinal()] = null;
        boolean any = false;
        for (Plan p : plans) {
            any |= p != null;
        }
        armed = any;
    }

    /** Disarms every site. */
    public synchronized void disarmAll() {
        java.util.Arrays.fill(plans, null);
        armed = false;
    }

    /** How many failures have been injected at {@code site} so far. */
    public long injected(FailSite site) {
        return injected[site.ordinal()].get();
    }

    /**
     * Whether this call of {@code site} must fail. The hot path: one volatile load while disarmed.
     */
    public boolean shouldFail(FailSite site) {
        return armed && shouldFailSlowPath(site);
    }

    private boolean shouldFailSlowPath(FailSite site) {
        Plan plan;
        synchronized (this) {
            plan = plans[site.ordinal()];
        }
        if (plan == null) {
            return false;
        }
        boolean fail;
        if (plan.countdown() != null) {
            fail = plan.countdown().decrementAndGet() == 0;
        } else {
            synchronized (plan) {
                fail = plan.random().nextDouble() < plan.probability();
            }
        }
        if (fail) {
            injected[site.ordinal()].incrementAndGet();
        }
        return fail;
    }
}
