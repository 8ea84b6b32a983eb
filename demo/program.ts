import type { Program } from '../src/cli/main.ts';
import { demoMigrateCommand } from './migrate-command.ts';
import { seedCommand } from './seed-command.ts';

/** The demo's own commands: they create and fill the demo tables, which viewkeeper never touches. */
export const DEMO: Program = { name: 'demo', commands: [demoMigrateCommand, seedCommand] };
