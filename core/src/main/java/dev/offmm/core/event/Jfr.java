package dev.offmm.core.event;

import jdk.jfr.Event;
import jdk.jfr.FlightRecorder;
import jdk.jfr.FlightRecorderListener;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Whether offmm's events may be recorded at all: false until the JVM's Flight Recorder is
 * initialized (by {@code -XX:StartFlightRecording}, {@code jcmd JFR.start} or a
 * {@link jdk.jfr.Recording}), so that a JVM that never records pays one volatile load per emitting
 * site and builds no event object. Once it is true, each site builds its event and asks it
 * ({@link Event#isEnabled()}, {@link Event#shouldCommit()}), as JFR's own events do.
 *
 * <p>Periodic events are registered with the recorder only once it is initialized: registering
 * earlier would start JFR's metadata machinery in a JVM that may never record.
 */
public final class Jfr {
    private static final List<Hook> HOOKS = new CopyOnWriteArrayList<>();
    private static volatile boolean on;

    static {
        FlightRecorder.addListener(new FlightRecorderListener() {
            @Override
            public void recorderInitialized(FlightRecorder recorder) {
                // Set before the hooks are read: a hook added meanwhile sees 'on' and registers itself.
                on = true;
                for (Hook h : HOOKS) {
                    h.register();
                }
            }
        });
    }

    private Jfr() {
    }

    /** Whether the Flight Recorder is initialized (a volatile load): if not, no offmm event is built. */
    public static boolean on() {
        return on;
    }

    /**
     * Registers {@code hook} as the producer of periodic event {@code type} (see
     * {@link FlightRecorder#addPeriodicEvent}) once the recorder is initialized, or now if it is.
     */
    public static void addPeriodicEvent(Class<? extends Event> type, Runnable hook) {
        Hook h = new Hook(type, hook);
        HOOKS.add(h);
        if (on) {
            h.register();
        }
    }

    /** A periodic event, registered once whichever of the listener and {@link #addPeriodicEvent} gets there first. */
    private record Hook(Class<? extends Event> type, Runnable hook, AtomicBoolean done) {
        Hook(Class<? extends Event> type, Runnable hook) {
            this(type, hook, new AtomicBoolean());
        }

        void register() {
            if (done.compareAndSet(false, true)) {
                FlightRecorder.addPeriodicEvent(type, hook);
            }
        }
    }
}
