import type { TestProject } from 'vitest/node';
import templateSetup from './global-setup.ts';
import { startThrowawayCluster } from './redis-cluster.ts';

/**
 * The `cluster` project: the same template database as the integration run (global-setup.ts; its
 * private standalone Redis is started too but only the helpers' leases use it), plus one private
 * 3-master Redis Cluster with a replica per master, provided as a `redis+cluster://` URL.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startThrowawayCluster(3);
  let teardown: (() => Promise<void>) | undefined;
  try {
    teardown = await templateSetup(project);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  // Every node is a seed: a test that kills one master still lets new connections find the rest.
  project.provide(
    'testClusterUrl',
    `redis+cluster://${cluster.ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
  );
  project.provide('testClusterPorts', cluster.ports);
  return async () => {
    await cluster.stop();
    await teardown?.();
  };
}
