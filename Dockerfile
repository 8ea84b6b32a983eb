# The CLI is TypeScript run directly by Node 24 (type stripping), so there is no build stage.
FROM node:24-slim

WORKDIR /app

# Production dependencies only. The `node` npm package is a devDependency, so the image's own
# Node 24 runs the code. --ignore-scripts matches package.json's allowScripts (msgpackr-extract
# is optional and loads its prebuilt binary without an install step).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY jobs ./jobs
COPY migrations ./migrations

ENV NODE_ENV=production
USER node

# No HEALTHCHECK: the daemon has no HTTP server yet, so there is nothing cheap to probe.
CMD ["node", "--max-semi-space-size=4", "bin/viewkeeper.ts", "start"]
