# The demo image: the CLI and the demo application as TypeScript run directly by Node 24 (type
# stripping works outside node_modules), so there is no build stage. A project of its own installs
# the package instead (README, "Use it in your project").
FROM node:24-slim

WORKDIR /app

# Production dependencies only. The `node` npm package is a devDependency, so the image's own
# Node 24 runs the code. --ignore-scripts matches package.json's allowScripts (msgpackr-extract
# is optional and loads its prebuilt binary without an install step).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY demo ./demo
COPY migrations ./migrations

ENV NODE_ENV=production
ENV VK_JOBS_DIR=/app/demo/jobs
USER node

# docker-compose.yml probes /readyz with `node -e "fetch(…)"`: this image has no curl, and needs none.
CMD ["node", "--max-semi-space-size=4", "bin/viewkeeper.js", "start"]
