package dev.offmm.offheap;

/**
 * Run by {@link HostRefusalTest} in a child JVM under an address-space limit: creates physical
 * memory of the capacity given in MiB and prints what happened, one line.
 */
public final class HostRefusalProbe {
    private HostRefusalProbe() {
    }

    /** {@code args[0]}: the capacity in MiB. */
    public static void main(String[] args) {
        try (PhysicalMemory m = PhysicalMemory.create(Long.parseLong(args[0]) << 20)) {
            System.out.println("created " + m.bytes());
        } catch (HostMemoryException e) {
            System.out.println("refused call=" + e.call() + " errno=" + e.errno() + " capacity=" + e.capacity());
        } catch (Throwable e) {
            System.out.println("other " + e);
        }
    }
}
