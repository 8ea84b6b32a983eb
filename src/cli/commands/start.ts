import { loadConfig } from '../../config/config.ts';
import { createDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../logging/create-logger.ts';
import { defineCommand } from '../command.ts';

export const startCommand = defineCommand({
  name: 'start',
  summary:
    'Runs the daemon: refresh and write-behind workers, cron rebuilds, invalidation events. SIGTERM or SIGINT stops it gracefully (in-flight jobs finish); a second signal stops it at once.',
  usage: 'start',
  help: [],
  options: {},
  async run() {
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel });
    const daemon = createDaemon({ config, logger });
    await daemon.start();
    return new Promise<number>((resolve) => {
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals += 1;
        if (signals > 1) {
          logger.warn({ signal }, 'second signal: stopping now');
          process.exit(130);
        }
        logger.info({ signal }, 'stopping gracefully (send the signal again to force)');
        daemon.stop().then(
          () => resolve(0),
          () => resolve(1),
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  },
});
